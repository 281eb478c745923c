// metrics.cpp: metric name rules.
#include "benchrun/common/metrics.hpp"

namespace benchrun {

bool valid_metric_name(const std::string& name) noexcept {
  if (name.empty() || name.size() > metric::kMaxName) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace benchrun
