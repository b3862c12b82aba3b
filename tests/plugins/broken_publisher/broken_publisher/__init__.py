"""Publishers that cannot work, to show they are isolated."""
