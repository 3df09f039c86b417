package dev.nonstop.petclinic;

import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.Id;
import jakarta.persistence.ManyToOne;
import jakarta.validation.constraints.NotBlank;
import java.time.LocalDate;

/** A visit of a pet to the clinic. */
@Entity
public class Visit {
    @Id @GeneratedValue private Integer id;
    private LocalDate date;
    @NotBlank private String description;
    @ManyToOne private Pet pet;

    protected Visit() {}

    public Visit(LocalDate date, String description) {
        this.date = date;
        this.description = description;
    }

    public Integer getId() { return id; }
    public LocalDate getDate() { return date; }
    public String getDescription() { return description; }
    public Pet getPet() { return pet; }
    void setPet(Pet p) { pet = p; }
}
