"""The test suite of the publisher framework."""
