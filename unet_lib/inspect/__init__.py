"""Looking inside a U-Net: forward hooks that capture activations (``hooks``, part of the core), and the
tools built on them: Grad-CAM, predictions without skip connections and receptive fields
(``interpret``), and the layer-by-layer summary (``summary``)."""
