"""pimhil: host driver, device contract and bit-exact golden model of the PIM accelerator."""

__version__ = "0.1.0"
