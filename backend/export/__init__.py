"""File formats the backend writes and reads: rigged glTF, the result bundle."""
