"""A small sample service repository (`greeter`) and the scripted agents the demo sends through it."""
