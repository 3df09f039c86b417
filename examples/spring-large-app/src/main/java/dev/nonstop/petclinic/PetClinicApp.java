package dev.nonstop.petclinic;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;

/**
 * A PetClinic-sized Spring Boot app for nonstop's {@code make bench}: owners, pets, visits and
 * vets in JPA entities over an in-memory H2 database (seeded at boot by {@link Seed}), Thymeleaf
 * pages ({@code /owners}, {@code /owners/ID}, {@code /vets}), a JSON endpoint ({@code
 * /api/vets}), validation of the owner form, and Actuator's health groups. {@code GET /} answers
 * {@code VERSION PROFILE PORT} as examples/spring-boot-app does.
 */
@SpringBootApplication
public class PetClinicApp {
    public static void main(String[] args) {
        SpringApplication.run(PetClinicApp.class, args);
    }
}
