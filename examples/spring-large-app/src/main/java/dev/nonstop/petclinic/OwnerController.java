package dev.nonstop.petclinic;

import jakarta.validation.Valid;
import org.springframework.stereotype.Controller;
import org.springframework.ui.Model;
import org.springframework.validation.BindingResult;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.ModelAttribute;
import org.springframework.web.bind.annotation.PathVariable;
import org.springframework.web.bind.annotation.PostMapping;
import org.springframework.web.bind.annotation.RequestParam;
import org.springframework.web.server.ResponseStatusException;
import org.springframework.http.HttpStatus;

/** The owners' pages: the list (with a last-name filter), one owner's detail, the new-owner form. */
@Controller
class OwnerController {
    private final OwnerRepository owners;
    private final VisitRepository visits;

    OwnerController(OwnerRepository owners, VisitRepository visits) {
        this.owners = owners;
        this.visits = visits;
    }

    @GetMapping("/owners")
    String list(@RequestParam(name = "lastName", defaultValue = "") String lastName, Model model) {
        model.addAttribute("owners", owners.findByLastNameStartingWithIgnoreCaseOrderByLastName(lastName));
        model.addAttribute("lastName", lastName);
        return "owners/list";
    }

    @GetMapping("/owners/{id}")
    String detail(@PathVariable("id") int id, Model model) {
        Owner owner = owners.findById(id).orElseThrow(() -> new ResponseStatusException(HttpStatus.NOT_FOUND));
        model.addAttribute("owner", owner);
        model.addAttribute("visits", visits.countByPetOwnerId(id));
        return "owners/detail";
    }

    @GetMapping("/owners/new")
    String form(Model model) {
        model.addAttribute("owner", new Owner());
        return "owners/form";
    }

    @PostMapping("/owners/new")
    String create(@Valid @ModelAttribute("owner") Owner owner, BindingResult result) {
        if (result.hasErrors()) {
            return "owners/form";
        }
        return "redirect:/owners/" + owners.save(owner).getId();
    }
}
