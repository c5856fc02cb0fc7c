"""Sending one request to the API: the one send loop (whole or streamed answers), its retry
rules, the request budget, pooled clients, response body caps, timeouts, and the mapping of
answers to the exception tree."""
