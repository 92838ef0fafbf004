"""gameday serve: webhooks, pages, real processes, replicas on PostgreSQL, on Kubernetes."""
