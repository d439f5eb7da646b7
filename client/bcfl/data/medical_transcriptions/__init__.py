"""The medical-transcriptions specialty data set (see README.md in this folder)."""
