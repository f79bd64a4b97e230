//! EDSS disability worsening: baselines, minimum change, confirmation.
