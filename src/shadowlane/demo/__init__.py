"""The end-to-end demo: a grammar-tutor prod service, two model servers, the whole pipeline."""
