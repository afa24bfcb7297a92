"""The ``vm`` target: a service sealed into a microVM image and booted under QEMU.

- :mod:`riad.targets.vm.build` builds the image (host side) with the pieces of
  :mod:`riad.image`: the start-up trace, the cpio writer, the kernels;
- :mod:`riad.targets.vm.guest` is PID 1 inside the image (runs in the guest),
  :mod:`riad.targets.vm.app_main` runs a ``riad.App`` there, and
  :mod:`riad.targets.vm.netconf` configures the guest's NIC with ioctls;
- :mod:`riad.targets.vm.runner` boots an image under QEMU ``microvm`` (host side).
"""
