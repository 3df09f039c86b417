package dev.nonstop.petclinic;

import java.util.List;
import org.springframework.data.jpa.repository.JpaRepository;

/** The Spring Data repositories of the clinic's entities. */
final class Repositories {
    private Repositories() {}
}

interface OwnerRepository extends JpaRepository<Owner, Integer> {
    List<Owner> findByLastNameStartingWithIgnoreCaseOrderByLastName(String prefix);
}

interface PetRepository extends JpaRepository<Pet, Integer> {}

interface VisitRepository extends JpaRepository<Visit, Integer> {
    long countByPetOwnerId(Integer ownerId);
}

interface VetRepository extends JpaRepository<Vet, Integer> {
    List<Vet> findAllByOrderByLastName();
}
