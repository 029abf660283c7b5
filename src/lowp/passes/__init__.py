"""Model passes: canonicalize -> annotate -> calibrate -> insert QDQ -> verify."""
