"""The ``realsim`` command line and the configs that start each job. No algorithmic code lives here."""
