"""Small geometry helpers (written for ftdist's code recipe tests)."""

import math


def area(width, height):
    """Return the area of a rectangle."""
    return width * height


# Distance between two points in the plane.
def distance(a, b):
    return math.hypot(a[0] - b[0], a[1] - b[1])


def undocumented(x):
    return x + 1


class Circle:
    def __init__(self, radius):
        self.radius = radius

    def circumference(self):
        """Return the length of the circle's boundary."""
        return 2 * math.pi * self.radius
