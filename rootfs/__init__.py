"""minipod.rootfs"""
