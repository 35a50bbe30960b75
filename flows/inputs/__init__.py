"""RunInput forms coordinators answer in the Prefect UI, one module per process."""
