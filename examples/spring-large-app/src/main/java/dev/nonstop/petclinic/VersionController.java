package dev.nonstop.petclinic;

import org.springframework.beans.factory.annotation.Value;
import org.springframework.core.env.Environment;
import org.springframework.http.MediaType;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.RestController;

/** {@code GET /} answers {@code VERSION PROFILE PORT}, {@code GET /profile} the active profile. */
@RestController
class VersionController {
    private final Environment env;
    private final String version;

    VersionController(Environment env, @Value("${app.version}") String version) {
        this.env = env;
        this.version = version;
    }

    private String profile() {
        String[] active = env.getActiveProfiles();
        return active.length == 0 ? "default" : String.join(",", active);
    }

    @GetMapping(path = "/", produces = MediaType.TEXT_PLAIN_VALUE)
    String root() {
        String port = env.getProperty("local.server.port", env.getProperty("server.port", "8080"));
        return version + " " + profile() + " " + port + "\n";
    }

    @GetMapping(path = "/profile", produces = MediaType.TEXT_PLAIN_VALUE)
    String profileEndpoint() {
        return profile();
    }
}
