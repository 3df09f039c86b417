package dev.nonstop.petclinic;

import java.time.LocalDate;
import org.springframework.boot.CommandLineRunner;
import org.springframework.stereotype.Component;
import org.springframework.transaction.annotation.Transactional;

/** Seeds the in-memory database at boot (before readiness): 10 owners, 13 pets, visits, 6 vets. */
@Component
class Seed implements CommandLineRunner {
    private final OwnerRepository owners;
    private final VetRepository vets;

    Seed(OwnerRepository owners, VetRepository vets) {
        this.owners = owners;
        this.vets = vets;
    }

    @Override
    @Transactional
    public void run(String... args) {
        String[][] people = {
            {"George", "Franklin", "110 W. Liberty St.", "Madison", "6085551023"},
            {"Betty", "Davis", "638 Cardinal Ave.", "Sun Prairie", "6085551749"},
            {"Eduardo", "Rodriquez", "2693 Commerce St.", "McFarland", "6085558763"},
            {"Harold", "Davis", "563 Friendly St.", "Windsor", "6085553198"},
            {"Peter", "McTavish", "2387 S. Fair Way", "Madison", "6085552765"},
            {"Jean", "Coleman", "105 N. Lake St.", "Monona", "6085552654"},
            {"Jeff", "Black", "1450 Oak Blvd.", "Monona", "6085555387"},
            {"Maria", "Escobito", "345 Maple St.", "Madison", "6085557683"},
            {"David", "Schroeder", "2749 Blackhawk Trail", "Madison", "6085559435"},
            {"Carlos", "Estaban", "2335 Independence La.", "Waunakee", "6085555487"},
        };
        String[] types = {"cat", "dog", "lizard", "snake", "bird", "hamster"};
        int n = 0;
        for (String[] p : people) {
            Owner o = new Owner();
            o.setFirstName(p[0]);
            o.setLastName(p[1]);
            o.setAddress(p[2]);
            o.setCity(p[3]);
            o.setTelephone(p[4]);
            int pets = n % 3 == 0 ? 2 : 1;
            for (int i = 0; i < pets; i++, n++) {
                Pet pet = new Pet("Pet" + n, types[n % types.length], LocalDate.of(2015 + n % 8, 1 + n % 12, 1 + n % 28));
                pet.addVisit(new Visit(LocalDate.of(2024, 1 + n % 12, 2), "rabies shot"));
                if (n % 2 == 0) {
                    pet.addVisit(new Visit(LocalDate.of(2025, 1 + n % 12, 9), "checkup"));
                }
                o.addPet(pet);
            }
            owners.save(o);
        }
        vets.save(new Vet("James", "Carter"));
        vets.save(new Vet("Helen", "Leary", "radiology"));
        vets.save(new Vet("Linda", "Douglas", "surgery", "dentistry"));
        vets.save(new Vet("Rafael", "Ortega", "surgery"));
        vets.save(new Vet("Henry", "Stevens", "radiology"));
        vets.save(new Vet("Sharon", "Jenkins"));
    }
}
