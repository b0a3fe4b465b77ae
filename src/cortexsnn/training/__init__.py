"""Training loops, schedules and run logging."""
