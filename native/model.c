int tl_placeholder_unused;
