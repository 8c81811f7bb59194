"""Line I/O around the inference core: where frames come from (sources), the inspection loop
(stream), what is written and sent per frame (sinks, delivery over an on-disk outbox), and the
overlays drawn on frames."""
