"""Language models as policies: building the tiny model, loading SmolLM2, a Hub id or a saved folder,
checking model folders, saving. Both the engines and training load models through here."""
