"""The report end of the data flow: comparisons of NAS methods, from search to retrained network to table."""
