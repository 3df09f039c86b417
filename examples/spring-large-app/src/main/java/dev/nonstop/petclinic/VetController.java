package dev.nonstop.petclinic;

import java.util.List;
import org.springframework.stereotype.Controller;
import org.springframework.ui.Model;
import org.springframework.web.bind.annotation.GetMapping;
import org.springframework.web.bind.annotation.ResponseBody;

/** The vets: a Thymeleaf page ({@code /vets}) and JSON ({@code /api/vets}). */
@Controller
class VetController {
    private final VetRepository vets;

    VetController(VetRepository vets) {
        this.vets = vets;
    }

    /** What {@code /api/vets} answers per vet. */
    record VetJson(int id, String name, List<String> specialties) {}

    @GetMapping("/vets")
    String page(Model model) {
        model.addAttribute("vets", vets.findAllByOrderByLastName());
        return "vets";
    }

    @GetMapping("/api/vets")
    @ResponseBody
    List<VetJson> json() {
        return vets.findAllByOrderByLastName().stream()
                .map(v -> new VetJson(v.getId(), v.getFirstName() + " " + v.getLastName(), List.copyOf(v.getSpecialties())))
                .toList();
    }
}
