// The registry of the backends this build holds.
#include <string>

#include "kernels/kernels.h"
#include "tensor/error.h"

namespace rlhf::kernels {

std::vector<const Backend*> registered_backends() { return {&cpu_backend(), &reference_backend()}; }

const Backend& backend_named(const std::string& name) {
  std::string names;
  for (const Backend* b : registered_backends()) {
    if (name == b->name()) return *b;
    names += std::string(names.empty() ? "" : ", ") + b->name();
  }
  throw InputError("unknown backend '" + name + "' (this build has " + names + ")");
}

}  // namespace rlhf::kernels
