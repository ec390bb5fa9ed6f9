//! A tus 1.0 upload client that resumes through resets, hangs and restarts.
