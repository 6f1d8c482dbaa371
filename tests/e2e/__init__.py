"""End-to-end tests drive the platform as a person does, through the browser, on the real stack."""
