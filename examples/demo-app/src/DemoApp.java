// DemoApp: a tiny, dependency-free stand-in for a Spring Boot jar.
//
// The deploy toolkit's tests, `make demo` and the benchmarks run this instead of a real
// Spring Boot application. It mimics what the toolkit cares about: a boot delay before the
// port is bound, /actuator/health, the legacy /profile endpoint, a streamed page (/big), and
// graceful shutdown on SIGTERM like Spring's `server.shutdown: graceful` (stop accepting,
// finish in-flight requests, then exit). Failure modes (crash at boot, dying later, unhealthy, ignoring
// SIGTERM) are switched on with -D system properties; see README.md. A release that passes
// health and is still bad: -Ddemo.error-rate=PERCENT answers 500 to that share of requests
// (spread evenly), -Ddemo.slow-ms=MS delays each answer; neither touches /actuator/health.
// With -Dmanagement.endpoints.web.exposure.include=health,metrics (Spring's own property) it
// serves Actuator's /actuator/metrics/http.server.requests (COUNT, TOTAL_TIME, MAX; the tag
// outcome:SERVER_ERROR) for every request it answered, /actuator/ ones too (as Spring Boot).
// Built by build.sh.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;
import sun.misc.Signal;

public class DemoApp {
    static final AtomicInteger inFlight = new AtomicInteger();
    static final AtomicInteger served = new AtomicInteger();
    // http.server.requests, as Micrometer counts it: requests, 5xx, total and max time.
    static final java.util.concurrent.atomic.AtomicLong metricCount = new java.util.concurrent.atomic.AtomicLong();
    static final java.util.concurrent.atomic.AtomicLong metricErrors = new java.util.concurrent.atomic.AtomicLong();
    static final java.util.concurrent.atomic.AtomicLong metricNanos = new java.util.concurrent.atomic.AtomicLong();
    static final java.util.concurrent.atomic.AtomicLong metricMaxNanos = new java.util.concurrent.atomic.AtomicLong();
    static volatile boolean shuttingDown = false;
    static String version;
    static String profile;
    static int port;

    public static void main(String[] args) throws Exception {
        port = Integer.getInteger("server.port", 8080);
        profile = System.getProperty("spring.profiles.active", "default");
        version = System.getProperty("demo.version", resourceVersion());
        long bootMs = Long.getLong("demo.boot-ms", 1000L);
        log("DemoApp version=" + version + " profile=" + profile + " port=" + port
                + " booting (" + bootMs + " ms)");
        Thread.sleep(bootMs);
        boolean crashHere = java.util.Arrays.asList(
                System.getProperty("demo.crash-profiles", "").split(",")).contains(profile);
        if (Boolean.getBoolean("demo.crash-at-boot") || crashHere) {
            failToStart("demo crash requested", 3);
        }

        HttpServer server;
        try {
            server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 256);
        } catch (BindException e) {
            failToStart("port " + port + " already in use", 1);
            return;
        }
        server.setExecutor(Executors.newFixedThreadPool(64));
        server.createContext("/", DemoApp::handle);
        if (Boolean.getBoolean("demo.ignore-sigterm")) {
            Signal.handle(new Signal("TERM"), s -> log("ignoring SIGTERM"));
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> shutdown(server), "graceful-shutdown"));
        server.start();
        log("Started DemoApp on port " + port);

        Long exitAfterMs = Long.getLong("demo.exit-after-ms");
        if (exitAfterMs != null) {
            Thread.sleep(exitAfterMs);
            log("demo.exit-after-ms elapsed: exiting with status 4");
            System.exit(4);
        }
    }

    static void handle(HttpExchange ex) throws IOException {
        inFlight.incrementAndGet();
        long t0 = System.nanoTime();
        int[] status = {0};
        try {
            byte[] body = ex.getRequestBody().readAllBytes(); // always drain: keeps keep-alive usable
            String path = ex.getRequestURI().getPath();
            String line = version + " " + profile + " " + port;
            int code = 200;
            String type = "text/plain; charset=utf-8";
            String out;
            if ("POST".equals(ex.getRequestMethod())) {
                out = line + " len=" + body.length + "\n";
            } else if (path.equals("/actuator/health")) {
                boolean up = !Boolean.getBoolean("demo.unhealthy");
                code = up ? 200 : 503;
                type = "application/json";
                out = up ? "{\"status\":\"UP\"}" : "{\"status\":\"DOWN\"}";
            } else if (path.startsWith("/actuator/metrics") && metricsExposed()) {
                type = "application/json";
                String q = ex.getRequestURI().getRawQuery();
                long count = metricCount.get(), errors = metricErrors.get();
                long nanos = metricNanos.get(), max = metricMaxNanos.get();
                if (path.equals("/actuator/metrics")) {
                    out = "{\"names\":[\"http.server.requests\"]}";
                } else if (!path.equals("/actuator/metrics/http.server.requests") || count == 0) {
                    code = 404; // Actuator: no such meter (yet)
                    out = "";
                } else if (q != null && q.contains("tag=outcome:SERVER_ERROR")) {
                    if (errors == 0) {
                        code = 404;
                        out = "";
                    } else {
                        out = metricJson(errors, 0, 0);
                    }
                } else {
                    out = metricJson(count, nanos, max);
                }
            } else if (path.startsWith("/actuator/")) {
                code = 404; // an endpoint Actuator does not expose
                out = "";
            } else if (path.equals("/profile")) {
                out = profile;
            } else if (path.equals("/big")) {
                // A page streamed as an app renders one: chunked, `kb` KiB written 1 KiB at a
                // time, a pause of `ms` after every 8 KiB; its first line is the usual one.
                String q = ex.getRequestURI().getRawQuery();
                long kb = queryLong(q, "kb", 64), pause = queryLong(q, "ms", 1);
                ex.getResponseHeaders().set("Content-Type", type);
                ex.sendResponseHeaders(200, 0);
                java.io.OutputStream os = ex.getResponseBody();
                byte[] filler = new byte[1024];
                java.util.Arrays.fill(filler, (byte) 'x');
                filler[1023] = '\n';
                os.write((line + "\n").getBytes(StandardCharsets.UTF_8));
                for (long i = 1; i < kb; i++) {
                    os.write(filler);
                    os.flush();
                    if (i % 8 == 0 && pause > 0) {
                        Thread.sleep(pause);
                    }
                }
                return;
            } else {
                if (path.equals("/slow")) {
                    Thread.sleep(queryMs(ex.getRequestURI().getRawQuery()));
                }
                out = line + "\n";
            }
            if (!path.startsWith("/actuator/")) {
                int rate = Integer.getInteger("demo.error-rate", 0);
                if (rate > 0 && Math.floorMod(served.getAndIncrement() * rate, 100) < rate) {
                    code = 500;
                    out = line + " error injected (demo.error-rate=" + rate + ")\n";
                }
                Thread.sleep(Long.getLong("demo.slow-ms", 0L));
            }
            byte[] bytes = out.getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("Content-Type", type);
            if (shuttingDown) {
                ex.getResponseHeaders().set("Connection", "close");
            }
            ex.sendResponseHeaders(code, bytes.length); // fixed Content-Length, never chunked
            ex.getResponseBody().write(bytes);
            status[0] = code;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } finally {
            try {
                ex.close(); // flushes the response to the socket before we count it as done
            } finally {
                if (status[0] != 0) { // every request, /actuator/ too, as Spring Boot counts
                    long took = System.nanoTime() - t0;
                    metricNanos.addAndGet(took);
                    metricMaxNanos.accumulateAndGet(took, Math::max);
                    if (status[0] >= 500) {
                        metricErrors.incrementAndGet();
                    }
                    metricCount.incrementAndGet();
                }
                inFlight.decrementAndGet();
            }
        }
    }

    // Graceful shutdown, run by the JVM on SIGTERM / SIGINT / System.exit.
    static void shutdown(HttpServer server) {
        shuttingDown = true;
        log("Graceful shutdown: waiting for " + inFlight.get() + " in-flight requests");
        long waitMs = Long.getLong("demo.shutdown-ms", 30000L);
        // HttpServer has no "stop accepting" call: stop(delay) closes the listener at once,
        // lets current exchanges run, and then lingers (in JDK 17 up to the full delay when
        // nothing is in flight). Run it on a side thread and do our own in-flight accounting.
        Thread closer = new Thread(() -> server.stop((int) (waitMs / 1000) + 1), "close-listener");
        closer.setDaemon(true);
        closer.start();
        long deadline = System.currentTimeMillis() + waitMs;
        while (inFlight.get() > 0 && System.currentTimeMillis() < deadline) {
            sleep(20);
        }
        if (inFlight.get() > 0) {
            log("Graceful shutdown timed out with " + inFlight.get() + " requests in flight");
        }
        server.stop(0); // finished responses were already written; this closes idle connections
        log("Shutdown complete");
    }

    static boolean metricsExposed() {
        return java.util.Arrays.asList(System.getProperty(
                "management.endpoints.web.exposure.include", "health").split(",")).contains("metrics");
    }

    static String metricJson(long count, long nanos, long maxNanos) {
        return "{\"name\":\"http.server.requests\",\"baseUnit\":\"seconds\",\"measurements\":["
                + "{\"statistic\":\"COUNT\",\"value\":" + (double) count + "},"
                + "{\"statistic\":\"TOTAL_TIME\",\"value\":" + nanos / 1e9 + "},"
                + "{\"statistic\":\"MAX\",\"value\":" + maxNanos / 1e9 + "}],"
                + "\"availableTags\":[{\"tag\":\"outcome\",\"values\":[\"SUCCESS\",\"SERVER_ERROR\"]}]}";
    }

    static long queryLong(String query, String key, long dflt) {
        if (query != null) {
            for (String kv : query.split("&")) {
                if (kv.startsWith(key + "=")) {
                    try {
                        return Long.parseLong(kv.substring(key.length() + 1));
                    } catch (NumberFormatException e) {
                        return dflt;
                    }
                }
            }
        }
        return dflt;
    }

    static long queryMs(String query) {
        if (query != null) {
            for (String kv : query.split("&")) {
                if (kv.startsWith("ms=")) {
                    try {
                        return Long.parseLong(kv.substring(3));
                    } catch (NumberFormatException e) {
                        break;
                    }
                }
            }
        }
        return 1000;
    }

    static String resourceVersion() {
        try (InputStream in = DemoApp.class.getResourceAsStream("/version.txt")) {
            String v = in == null ? "" : new String(in.readAllBytes(), StandardCharsets.UTF_8).trim();
            return v.isEmpty() ? "dev" : v;
        } catch (IOException e) {
            return "dev";
        }
    }

    static void failToStart(String reason, int status) {
        System.err.println("APPLICATION FAILED TO START: " + reason);
        System.err.println("\tat DemoApp.main(DemoApp.java) (exit status " + status + ")");
        System.err.flush();
        System.exit(status);
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    static void log(String msg) {
        System.out.println(msg);
        System.out.flush();
    }
}
