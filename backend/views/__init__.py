"""Views of an object from the SV3D orbit: our mesh renderer and SV3D-p, both giving a ViewSet."""
