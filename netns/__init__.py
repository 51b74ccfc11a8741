"""minipod.netns"""
