"""What the operator, the sensor and the triggers share: wait options and their defaults, the
outcome policy, how a wait ends, and the trigger's event payloads."""
