//! Admin commands of the buyers binary.
