// kernel.hpp: the guest kernel: provisioned from Debian's archive into the cache, or user-named.
#pragma once

#include <string>

namespace benchrun::vm {

struct Kernel {
  std::string image;        // bzImage
  std::string modules_dir;  // its lib/modules/<release>; empty when none is known
  std::string release;      // "6.1.0-56-cloud-amd64", from the bzImage's header
};

// A Debian kernel unpacked into <cache_dir>/kernels/<release>/{vmlinuz,modules/} (plus config, its
// .config, when the package has one); nothing is installed on the host. package is a metapackage
// (linux-image-cloud-amd64) whose Depends names linux-image-<release>, or such a
// linux-image-<release> package itself. The release the package resolved to is remembered in
// <cache_dir>/kernels/<package>.release, so once provisioned no apt call is made at all. Otherwise:
// `apt-get download` (using the host's package lists; no update) into a temp dir, `dpkg-deb -f` for
// Depends, `dpkg-deb -x`, and an atomic rename of the assembled directory, under a lock so
// concurrent provisioners wait for each other. ConfigError for a bad package name; VmError with
// apt's or dpkg's message when a step fails (no network, unknown package, a package without a
// bzImage).
Kernel provision_debian_kernel(const std::string& cache_dir,
                               const std::string& package = "linux-image-cloud-amd64",
                               const std::string& apt_get = "apt-get",
                               const std::string& dpkg_deb = "dpkg-deb");

// A user-named kernel: image must be a bzImage (its release is read from the header); modules_dir,
// when given, must be a directory. ConfigError for a missing path, VmError for a non-bzImage.
Kernel kernel_from_path(const std::string& image, const std::string& modules_dir = "");

// The release of a bzImage: the first word of the version string its setup header points to
// (x86 boot protocol >= 2.00: "HdrS" at 0x202, kernel_version at 0x20E, string at value + 0x200).
// VmError for a file that is not a bzImage or whose header is inconsistent.
std::string bzimage_release(const std::string& path);

}  // namespace benchrun::vm
