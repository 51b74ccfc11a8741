"""minipod.runtime"""
