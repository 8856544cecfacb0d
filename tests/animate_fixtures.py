"""Tiny seeded animate models of the real classes, saved as diffusers folders (as diffusers' own tests'
get_dummy_components do), for tests that must load through the real from_pretrained path."""

from __future__ import annotations

from pathlib import Path

import torch


def tiny_framefleet_unet(seed: int = 0, guidance: bool = False) -> torch.nn.Module:
    from framefleet.models.animate.unet import FramefleetVideoUNet

    torch.manual_seed(seed)
    unet = FramefleetVideoUNet(
        sample_size=32,
        num_frames=4,
        block_out_channels=(16, 16, 32),
        head_dim=8,
        context_tokens=2,
        guidance_embeds=guidance,
        camera_path=True,  # as our reference models
        pixel_head_channels=4,
    )
    with torch.no_grad():  # zero-initialised output layers would make every test trivially pass
        for name, p in unet.named_parameters():
            if p.ndim > 1 and (p == 0).all():
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(hash(name) % 2**31))
    return unet


def save_tiny_framefleet(folder: Path, seed: int = 0) -> Path:
    from framefleet.models.animate.reference import export_reference

    return export_reference(tiny_framefleet_unet(seed), folder, kind="teacher")


def tiny_svd_components(seed: int = 0) -> dict[str, object]:
    from diffusers import AutoencoderKLTemporalDecoder, EulerDiscreteScheduler, UNetSpatioTemporalConditionModel
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=16,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=8,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )
    torch.manual_seed(seed)
    vae = AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
        latent_channels=4,
    )
    torch.manual_seed(seed)
    config = CLIPVisionConfig(
        hidden_size=32,
        projection_dim=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=32,
        intermediate_size=37,
        patch_size=4,
    )
    return {
        "unet": unet,
        "scheduler": scheduler,
        "vae": vae,
        "image_encoder": CLIPVisionModelWithProjection(config),
        "feature_extractor": CLIPImageProcessor(crop_size=32, size=32),
    }


def save_tiny_svd(folder: Path, seed: int = 0) -> Path:
    import warnings

    from diffusers import StableVideoDiffusionPipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        StableVideoDiffusionPipeline(**tiny_svd_components(seed)).save_pretrained(folder)  # type: ignore[arg-type]
    return folder
