"""The fake NVML library (fakenvml.c, built by `fakenvml_build`) and fake sysfs trees (`fakesysfs`)
that the node checks run against: `from tests.fakenvml.fakenvml_build import build_fake_nvml`."""
