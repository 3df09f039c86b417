package dev.nonstop.petclinic;

import jakarta.persistence.CascadeType;
import jakarta.persistence.Entity;
import jakarta.persistence.GeneratedValue;
import jakarta.persistence.Id;
import jakarta.persistence.OneToMany;
import jakarta.persistence.OrderBy;
import jakarta.validation.constraints.NotBlank;
import jakarta.validation.constraints.Pattern;
import java.util.ArrayList;
import java.util.List;

/** A pet owner, with the pets they brought. */
@Entity
public class Owner {
    @Id @GeneratedValue private Integer id;
    @NotBlank private String firstName;
    @NotBlank private String lastName;
    @NotBlank private String address;
    @NotBlank private String city;

    @NotBlank
    @Pattern(regexp = "\\d{10}", message = "ten digits")
    private String telephone;

    @OneToMany(mappedBy = "owner", cascade = CascadeType.ALL)
    @OrderBy("name")
    private List<Pet> pets = new ArrayList<>();

    public Integer getId() { return id; }
    public String getFirstName() { return firstName; }
    public void setFirstName(String v) { firstName = v; }
    public String getLastName() { return lastName; }
    public void setLastName(String v) { lastName = v; }
    public String getAddress() { return address; }
    public void setAddress(String v) { address = v; }
    public String getCity() { return city; }
    public void setCity(String v) { city = v; }
    public String getTelephone() { return telephone; }
    public void setTelephone(String v) { telephone = v; }
    public List<Pet> getPets() { return pets; }

    public void addPet(Pet pet) {
        pet.setOwner(this);
        pets.add(pet);
    }
}
