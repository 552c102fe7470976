from ftdist.cli import entry

entry()
