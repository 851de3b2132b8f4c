//! Insights over the real binaries: the five services as separate
//! processes, each on its own fresh database, driven through their APIs.

mod indicators;
