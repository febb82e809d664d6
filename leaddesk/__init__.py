"""Leaddesk's composition root: settings, the command line, the model factory and job dispatch."""

__version__ = "0.1.0"
