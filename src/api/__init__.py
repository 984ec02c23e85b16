"""The application: the route table and the scheduled jobs, shared by both runtime adapters."""
