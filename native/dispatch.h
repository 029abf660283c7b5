// Dispatch layer: CPU feature detection (once) and the active microkernel table.
#pragma once
#include <string>
#include <vector>

#include "common.h"

namespace lowp {

std::vector<std::string> available_paths();
// Throws std::invalid_argument for an unknown name or a path this CPU cannot run.
const IsaTable* table_for(const std::string& name);
const IsaTable* active_table();
void set_active_path(const std::string& name);

}  // namespace lowp
