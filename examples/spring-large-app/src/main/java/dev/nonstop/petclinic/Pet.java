package dev.nonstop.petclinic;

import jakarta.persistence.CascadeType;
import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.Id;
import jakarta.persistence.ManyToOne;
import jakarta.persistence.OneToMany;
import jakarta.persistence.OrderBy;
import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.Past;
import java.time.LocalDate;
import java.util.ArrayList;
import java.util.List;

/** A pet, its owner and its visits. */
@Entity
public class Pet {
    @Id @GeneratedValue private Integer id;
    @NotBlank private String name;
    @NotBlank private String type;
    @Past private LocalDate birthDate;
    @ManyToOne private Owner owner;

    @OneToMany(mappedBy = "pet", cascade = CascadeType.ALL)
    @OrderBy("date")
    private List<Visit> visits = new ArrayList<>();

    protected Pet() {}

    public Pet(String name, String type, LocalDate birthDate) {
        this.name = name;
        this.type = type;
        this.birthDate = birthDate;
    }

    public Integer getId() { return id; }
    public String getName() { return name; }
    public String getType() { return type; }
    public LocalDate getBirthDate() { return birthDate; }
    public Owner getOwner() { return owner; }
    void setOwner(Owner o) { owner = o; }
    public List<Visit> getVisits() { return visits; }

    public void addVisit(Visit visit) {
        visit.setPet(this);
        visits.add(visit);
    }
}
