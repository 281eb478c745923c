// power.cpp: powering the guest off.
#include "init/power.hpp"

#include <sys/reboot.h>
#include <unistd.h>

#include "init/console.hpp"

namespace benchrun::guest {

void power_off() noexcept {
  breadcrumb("power off");
  ::sync();
  ::reboot(RB_POWER_OFF);
  breadcrumb("power off failed, rebooting");
  ::reboot(RB_AUTOBOOT);
  for (;;) ::pause();
}

}  // namespace benchrun::guest
