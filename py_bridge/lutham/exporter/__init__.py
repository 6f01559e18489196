"""Export: the pipeline behind `lutham export`, the output set it commits, the int8 XNNPACK baseline."""
