"""Helpers the test modules share (real peers and fixtures' building blocks); test modules import
from here, never from one another."""
