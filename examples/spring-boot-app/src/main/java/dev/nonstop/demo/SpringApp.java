package dev.nonstop.demo;

import jakarta.servlet.http.HttpServletRequest;
import java.io.IOException;
import org.springframework.beans.factory.annotation.Value;
import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.core.env.Environment;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestMapping;
import org.springframework.web.bind.annotation.RequestMethod;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.bind.annotation.RestController;

/**
 * The Spring Boot app nonstop's tests, {@code make demo} and {@code make bench} deploy.
 *
 * <p>{@code GET /} answers {@code VERSION PROFILE PORT} (as examples/demo-app does), {@code POST
 * /} adds {@code len=BYTES}, {@code GET|POST /slow?ms=N} sleeps N ms first (a request in flight
 * while a slot stops), {@code GET /profile} answers the active profile (what the legacy
 * profile.sh asks). Health, readiness and liveness come from Actuator. VERSION is filtered into
 * application.properties by the build ({@code mvn package -Dapp.version=v2}).
 */
@SpringBootApplication
@RestController
public class SpringApp {
    private final Environment env;
    private final String version;

    public SpringApp(Environment env, @Value("${app.version}") String version) {
        this.env = env;
        this.version = version;
    }

    public static void main(String[] args) {
        SpringApplication.run(SpringApp.class, args);
    }

    private String profile() {
        String[] active = env.getActiveProfiles();
        return active.length == 0 ? "default" : String.join(",", active);
    }

    private String line() {
        String port = env.getProperty("local.server.port", env.getProperty("server.port", "8080"));
        return version + " " + profile() + " " + port;
    }

    @GetMapping(path = "/", produces = MediaType.TEXT_PLAIN_VALUE)
    public String root() {
        return line() + "\n";
    }

    @PostMapping(path = "/", produces = MediaType.TEXT_PLAIN_VALUE)
    public String post(HttpServletRequest req) throws IOException {
        int len = req.getInputStream().readAllBytes().length;
        return line() + " len=" + len + "\n";
    }

    @RequestMapping(
            path = "/slow",
            method = {RequestMethod.GET, RequestMethod.POST},
            produces = MediaType.TEXT_PLAIN_VALUE)
    public String slow(@RequestParam(name = "ms", defaultValue = "1000") long ms, HttpServletRequest req)
            throws IOException, InterruptedException {
        req.getInputStream().readAllBytes(); // read the body to its end: keeps keep-alive usable
        Thread.sleep(Math.max(0, Math.min(ms, 600_000)));
        return line() + "\n";
    }

    @GetMapping(path = "/profile", produces = MediaType.TEXT_PLAIN_VALUE)
    public String profileEndpoint() {
        return profile();
    }
}
