"""Polygon labeling: the editing model (editor), geometry and labelme I/O, guesses, and the OpenCV view."""
