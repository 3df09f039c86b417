package dev.nonstop.petclinic;

import jakarta.persistence.ElementCollection;
import jakarta.persistence.Entity;
import jakarta.persistence.FetchType;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.Id;
import jakarta.validation.constraints.NotBlank;
import java.util.Set;
import java.util.TreeSet;

/** A veterinarian and their specialties. */
@Entity
public class Vet {
    @Id @GeneratedValue private Integer id;
    @NotBlank private String firstName;
    @NotBlank private String lastName;

    @ElementCollection(fetch = FetchType.EAGER)
    private Set<String> specialties = new TreeSet<>();

    protected Vet() {}

    public Vet(String firstName, String lastName, String... specialties) {
        this.firstName = firstName;
        this.lastName = lastName;
        this.specialties.addAll(Set.of(specialties));
    }

    public Integer getId() { return id; }
    public String getFirstName() { return firstName; }
    public String getLastName() { return lastName; }
    public Set<String> getSpecialties() { return new TreeSet<>(specialties); }
}
