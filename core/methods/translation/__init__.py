"""Translation methods: synthetic defect images made from real normal images (cyclegan)."""
