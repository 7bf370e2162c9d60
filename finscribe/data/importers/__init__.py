"""Importers of public real data sets into crops + region annotations (see `import_dataset`)."""
