"""Model representation and objective: random-effect terms, the profiled deviance, the
optimization record. No sklearn or pandas here."""
