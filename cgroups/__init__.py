"""minipod.cgroups"""
